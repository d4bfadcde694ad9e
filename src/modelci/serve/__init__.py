"""Hosting endpoints on this machine: the endpoint host (blue/green, routing), the version
servers it starts in each model's environment, the proxy in front of them and the host's state.
The server those processes run is `modelci.runtime.server`."""
