"""One module per resource: MethodViews with their schemas beside them."""
