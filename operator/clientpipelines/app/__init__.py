"""The onboarding app: a form, a pull request onto the GitOps repository, and a live
view of every client."""
