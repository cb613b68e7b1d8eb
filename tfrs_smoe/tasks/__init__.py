"""Training tasks: losses composed from small layers."""
