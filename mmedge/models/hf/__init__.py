"""Users' own pretrained encoders from local Hugging Face model folders (`hf:PATH`), per modality family."""
