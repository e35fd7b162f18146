"""The experiments' default configs, one ``<name>.yaml`` per experiment (shipped with cnnconv)."""
