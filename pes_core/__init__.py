"""pes_core: the science of the project, importable without FireWorks or MongoDB.

Subpackages: ``oracles`` (reference energies), ``structures`` (reference
crystals, validation), ``db`` (mongoengine documents), ``mtp`` (moment tensor
potentials), ``active`` (maxvol active learning), ``search`` (evolutionary
crystal structure prediction), ``clusters`` and ``ccd`` (collective cluster
deformations), ``ann`` (neural-network PES models), ``sampling`` (training-set
generators).

Units everywhere: eV, Å, eV/Å, GPa (ASE sign convention for stress).
"""

__version__ = "0.1.0"
