"""Language, knowing nothing of the rest of Gridline: one normal form, place phrases, classification into the
事项 codes (keyword baseline and trained model) and speech to text (Vosk)."""
