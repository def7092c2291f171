"""Modal screens: confirmations, the link, details, the file picker, help, quit."""
