"""`alertformer evaluate`: the transformer beside its peers, in stages (`run`), its report (`report`) and figures (`figures`)."""
