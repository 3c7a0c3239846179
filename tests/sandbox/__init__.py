"""Local emulators of every API the collection talks to; see README.md in this folder."""
