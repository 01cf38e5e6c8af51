"""Several instances on one PostgreSQL database: leases with fencing tokens decide
which instance owns each WhatsApp session and which one runs the singletons
(docs/cluster.md#ownership-and-fencing)."""
