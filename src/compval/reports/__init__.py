"""compval subpackage."""
