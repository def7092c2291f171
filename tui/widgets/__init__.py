"""The panes of the main screen (one per tab) and their small widgets."""
