"""Plugins that ship with the core, registered by its own entry points like any third party's."""
