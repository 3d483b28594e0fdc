"""The node daemon: ProviderServer, plugin host, ExecutionGateway, router and local executor."""
