"""Stripe as a source of invoices, payments, refunds, fees, credit notes and payouts (API v1)."""
