"""The registered model as serving runs it: loaded from the registry, scored, routed."""
