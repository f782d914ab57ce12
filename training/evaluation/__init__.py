"""``alertformer evaluate``: the transformer beside its peers, in stages (`run`), on test sets cut to
prefixes (`sets`), with its report (`report`), figures (`figures`) and peers (`peers`)."""
