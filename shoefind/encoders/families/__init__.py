"""The model families shoefind loads, one module each; shoefind.encoders.registry says which loads a spec."""
