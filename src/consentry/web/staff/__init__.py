"""The staff web app: thin views over the services and selectors, one module per screen."""
