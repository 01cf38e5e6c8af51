"""The WhatsApp Business Cloud API engine."""
