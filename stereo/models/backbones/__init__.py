"""Pretrained backbones: DINOv2 ViT + DPT head (DepthAnything-V2) and their weight loaders."""
