"""HDF5 task stores: schema v1, writer, reader, validator, xarray view."""
