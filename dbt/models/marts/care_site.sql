{{ current_state_model('care_site') }}
