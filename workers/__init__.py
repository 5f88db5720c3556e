"""Process composition: settings, logging, the embedded dev stack and the worker entry point."""
