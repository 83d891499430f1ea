"""Outbound mail: the queue worker, retries, DSNs (bounces and delay warnings).

The SMTP layer puts remote recipients into the durable ``outbound_queue``;
:class:`~mailserver.outbound.worker.OutboundWorker` takes them from there and
delivers them through ``federation.smtp_out``.
"""
