"""The HospitalSite and Region operators: the reconcile core, its adapters and medcloudctl."""
