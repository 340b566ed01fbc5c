"""Command line and end-to-end flow of tconv."""
