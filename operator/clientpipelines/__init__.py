"""Client onboarding as code: the ClientPipeline operator and its pipeline runner."""
