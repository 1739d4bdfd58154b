"""Training: LightningModules (no data logic), DataModules (no model logic), the Hydra entry point."""
