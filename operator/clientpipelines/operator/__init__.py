"""The kopf operator that makes the real systems match each ClientPipeline."""
