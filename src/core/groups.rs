//! Groups, CodeArts projects and submodules: deploy keys across more than one repository.
