"""Language: text normalisation and place phrases (later: speech and classification)."""
