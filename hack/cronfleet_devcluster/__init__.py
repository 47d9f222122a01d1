"""The local Kubernetes control plane that cronfleet's tests and demo run on."""
