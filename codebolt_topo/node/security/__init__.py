"""Who may do what on a node, and how much: bearer tokens on the handshake (``auth``), request
owners (``principals``), bounds on what a request, connection and node may take (``limits``), and
what jobs on a local node cannot reach (``isolation`` over ``landlock``)."""
