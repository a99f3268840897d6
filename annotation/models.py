"""Models of the annotation app arrive with its issue; the app is installed so its rooms are in place."""
