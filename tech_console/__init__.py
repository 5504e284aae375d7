"""The technician's side of Deskhand.

``web/`` holds the browser console the broker serves; this package's Python
modules are a scripting client (:class:`tech_console.client.TechConsole`) and the
``deskhand-console`` command built on it.
"""
