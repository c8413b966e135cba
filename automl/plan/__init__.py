"""What a run will do before it starts: skills, resources, the launch plan, pre-flight checks and the review."""
