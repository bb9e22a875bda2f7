"""The 12319 hotline: a FastAGI IVR that takes a report by voice.

``agi`` speaks the protocol, ``server`` runs one call per connection, ``flow`` is the call itself, ``hotline`` holds
what calls need from the rest of Gridline, ``prompts`` makes and finds the audio, ``sim`` runs a call in a terminal.
"""
