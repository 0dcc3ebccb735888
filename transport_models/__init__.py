"""cityflux transport: footprint readers, the Gaussian plume model and observation-operator assembly."""

__all__: list[str] = []
