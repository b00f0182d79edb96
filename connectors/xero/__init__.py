"""Xero Accounting API: sales invoices, payments, credit notes and contacts of one organisation (tenant)."""
