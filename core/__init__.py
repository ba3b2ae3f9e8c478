"""xmodal's bottom floor: the error root, the modality registry and media types; imports nothing of the project."""
