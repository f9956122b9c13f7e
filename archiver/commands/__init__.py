"""One module per group of CLI commands. They turn parsed arguments into calls on the
pipeline's stages and write through the CLI's ``Output``; ``archiver.cli`` dispatches here."""
