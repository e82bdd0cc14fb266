"""The pure core: entities, value objects and rules. Imports the standard library and attrs only."""
