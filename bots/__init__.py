"""Chat channels (WeChat, Telegram, web chat) and the one dialogue."""
