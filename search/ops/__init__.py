"""Operations: encoder evaluation, index versions and the live switch, the operations page."""
