{{ current_state_model('provider') }}
