"""Small pieces every subpackage shares: validated YAML configs, atomic file writes, run folders."""
