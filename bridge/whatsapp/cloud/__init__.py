"""The WhatsApp Business Cloud API engine (docs/cloud.md): the Graph API client
(``graph``), outbound conversion (``outbound``), the engine (``engine``), webhook
reading (``inbound``) and its HTTP routes (``webhook``)."""
