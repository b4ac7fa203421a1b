"""Shared pieces of the distillation suite. Importing the package does nothing: the process settings (threads,
allocator, paddle's flags) are utils.process.configure(), each script's first statement."""
