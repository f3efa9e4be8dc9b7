"""The base layer: settings, errors, connections, local services; imports nothing above it."""
