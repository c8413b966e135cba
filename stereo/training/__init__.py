"""Training machinery around the LightningModule: optimizers, lr schedules, callbacks, resume."""
