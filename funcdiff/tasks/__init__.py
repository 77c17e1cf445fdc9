"""Tasks built on trained operators: conditional sampling from Python."""
