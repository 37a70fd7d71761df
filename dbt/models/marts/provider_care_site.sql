{{ config(enabled="provider" in var("tables") and "care_site" in var("tables")) }}
-- grain: one provider, with its care site (none when the provider has no care site)
select
    p.provider_id,
    p.provider_name,
    p.npi,
    p.specialty_source_value,
    p.year_of_birth,
    p.gender_source_value,
    c.care_site_id,
    c.care_site_name,
    c.place_of_service_source_value
from {{ ref('provider') }} as p
left join {{ ref('care_site') }} as c on p.care_site_id = c.care_site_id
