{# unique over several columns, without dbt_utils (dbt Hub is not always reachable). #}
{% test unique_combination_of_columns(model, columns) %}
select {{ columns | join(', ') }}
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}

{# The rows where any of `columns` is null: one query for a table's required fields. #}
{% test not_null_columns(model, columns) %}
select *
from {{ model }}
where {% for c in columns %}{{ c }} is null{% if not loop.last %} or {% endif %}{% endfor %}
{% endtest %}
