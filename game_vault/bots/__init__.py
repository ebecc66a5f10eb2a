"""Reference user scripts, written the way existing Lumia users write them."""
