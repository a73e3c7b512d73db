"""What a protocol does with one image: build prompts, call the runner, score."""
