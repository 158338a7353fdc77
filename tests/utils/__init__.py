"""What tests share besides fixtures: builders of inputs, local stand-ins of outside services, and
waiting on conditions. Fixtures live in the conftest files; test modules import from here, never from
each other."""
